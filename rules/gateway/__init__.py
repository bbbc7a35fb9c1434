"""The tool gateway's rules: which tool call an agent may make, and when a run must stop.

Everything here is pure and deterministic, so the AgentRun workflow calls it directly (no I/O, time
comes in as an argument) and the tool activity calls the same rules again before it acts. `grants`
says which tools a role has, `governor` judges one call and keeps the run's state, `commands`,
`patches`, `mcp_args` and `paths` check what a call's arguments would touch, `shell` reads commands.

The security model, layer by layer: what each layer stops, and what it does not.

1. **Grants** (here): a role gets a fixed tool list (`ROLE_TOOLS`) and, by name, the MCP tools
   (`mcp__<server>__<tool>`) its grant lists; everything else is refused. Calls are rate limited per
   minute, the same call repeated `loop_threshold` times stops the run, and `max_denials` refused calls
   stop it too (an injected agent that keeps probing is cut off).
2. **Path rules** (paths.py, here, tools.py): every path argument of every tool, every path-shaped word
   of a command and every path-shaped MCP argument must be relative, stay inside the repository, avoid
   the always-forbidden secret and git paths (matched case-insensitively) and, for writes, fall inside
   `constraints.paths` minus `constraints.forbid`. The activity checks the *real* path too: a symbolic
   link onto a secret or out of the repository is refused by read_file, search, list_files, write_file,
   apply_patch and run_command alike. Patches are checked on every name git would use (`diff --git`,
   `---`/`+++` with git's one-component strip, rename/copy lines, C-quoted names, and `git apply
   --numstat` in the activity); symbolic links and submodules in patches are refused.
3. **Command parsing** (shell.py, here): deny by default what cannot be seen through. Refused: `$`
   expansion and command substitution (`$x`, `$(..)`, backticks, also in double quotes), here-docs,
   process substitution, functions, `for`/`case`, `eval`-style builtins, interpreters given inline code
   or a program on a pipe (`sh -c`, `python -c`, `node -e`, `perl -e`, `echo .. | python`), programs that
   run other programs out of sight (`xargs`, `find -exec`, `env`, `nohup`, `setsid`, `strace`, ...),
   network clients, package installers, git outside a read-only subcommand list (and `git -c`, `-a`,
   `--text`, `--binary`), `GIT_*`/`LD_*`/`PATH`/`HOME` assignments, absolute paths other than `/dev/null`
   and its kind, `~`, redirections and write-type programs (`tee`, `cp`, `mv`, `rm`, `sed -i`, ...) aimed
   outside the writable paths, awk/sed programs that run commands or touch other files. Globs that could
   match a hidden secret (`.en?`, `.*`) are refused here; other globs are expanded by the activity
   against the real files before the command runs.
4. **Confinement** (sandbox.py, activity side): where bubblewrap works, commands and MCP servers run
   with no network (a private loopback only), no capabilities, their own PID namespace (every process
   dies with the command), a read-only system, only the workspace and a private /tmp writable, the
   workspace's secret files replaced by an unreadable device, git internals read-only, and the home
   folders, other workspaces, /run sockets and the worker's other files absent. This is what holds
   against code the agent writes and then runs (`python tests/leak.py`), which parsing cannot judge.
5. **Scrubbed environment and limits** (tools.py): commands get PATH, LANG and a few harmless
   variables, a private HOME and TMPDIR, nothing else: `os.environ`, `/proc/self/environ`, `printenv`
   show no worker credentials. Every git they run treats secret paths as binary (`git log -p`, `show`,
   `diff`, `grep` print "Binary files differ"). Resource limits cap file size and process count;
   timeouts and an output limit kill the whole process group, and any process still carrying the run's
   marker is killed afterwards (setsid and double forks included).
6. **Post-hoc revert** (tools.py): after every command, MCP call and patch, files changed outside the
   writable paths are restored or removed (also when a changed .gitignore tried to hide them), secret
   files are restored byte for byte and new ones removed, git configuration, hooks and info are
   restored, new symbolic links onto secrets or out of the repository are removed (in ignored folders
   too), and files the command wrote that contain a known secret value are removed. The agent sees
   `refused: ... reverted: ...`; ToolResult.reverted lists the paths.
7. **Redaction and caps** (redact.py, tools.py): every tool's output (commands, file reads, search
   hits, MCP results, error messages) has known secret values (the workspace's secret files, the
   worker's own credentials) and credential shapes replaced, in linear time, and is capped; a
   command's output is read into a bounded buffer and the command is killed past a hard limit.

What is NOT prevented (said plainly):
- Without bubblewrap (no user namespaces, e.g. a default container seccomp profile) layer 4 is absent:
  a script the agent writes inside the allowed paths and runs can read any file the worker's user can
  read (outside the repository, other processes' environments), connect to the network, and print a
  secret transformed (reversed, encoded) so that redaction does not recognise it. Its out-of-scope
  writes inside the workspace are still reverted; its writes elsewhere (the worker's home) are not.
  The hostile corpus test runs these attacks unconfined and checks that they do get through.
- Secrets committed to the repository's history live in the object database, which commands can read:
  git's own commands will not print them (layer 3 and 5), but a script the agent writes can, in a
  transformed form, also inside the sandbox. Values no longer in a secret file are redacted only by
  shape. `git show <blob id>` is not refused.
- Inside the sandbox, agent code can still read every non-secret file of the workspace, burn CPU and
  memory until the timeout, fill the disk under the workspace and /tmp (only single files are capped),
  and write misleading content into the files it may write. Git-ignored files outside the writable
  paths (build output, caches) are left alone unless they are links onto secrets or hold a secret
  value: they never reach the change, so they are not treated as scope violations.
- Secrets that live neither in a recognised secret file nor in a recognised shape (a password
  hard-coded in `src/settings.py`) are readable and not redacted.
- An MCP server is trusted code configured by the operator: the gateway governs which tools are called
  and with which paths, confines the server where bubblewrap works, and reverts its out-of-scope writes,
  but what the server does with its own credentials (`network: true`) is its business, and its whole
  answer is read into memory before it is capped. Tool descriptions and results, issue bodies and
  repository files can carry prompt injections; the gateway limits what an injected agent can DO, it
  cannot stop the agent from reading such text.
- awk and sed program checks are pattern-based; subtler programs rely on confinement.
"""
