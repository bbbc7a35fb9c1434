"""Optional payload encryption: Temporal's own answer for sensitive payloads.

Every process connects through `workers.temporal_client.connect`, which adds `EncryptionCodec` to the
pydantic data converter when keys are configured (`activities.config.CodecSettings`), so workflow and
activity inputs and results, signal, query and update arguments, memos, heartbeat details and failure
messages reach the Temporal server as AES-256-GCM ciphertext. `server.py` is the codec server through
which the Temporal UI and CLI decode for operators who are allowed to. What the codec cannot protect
(search attributes, ids, names, headers) is written down in docs/kubernetes.md, "Payload encryption".
"""
