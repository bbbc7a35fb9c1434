"""The workspace: a working copy on one worker, and the governed tools agents use in it."""
