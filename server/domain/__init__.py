"""Domain rules: validation, defaults, permissions. Knows nothing of gRPC, HTTP
or SQL sessions; raises the errors in `errors`."""
