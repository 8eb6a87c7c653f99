"""Domain rules: validation, defaults, permissions. Knows nothing of gRPC, HTTP
or SQL; raises the errors in `errors`, and declares the stores it needs from
storage in `stores`."""
