"""gRPC transport: protobuf in, domain call, protobuf out; interceptors decide
who is calling and which status code an error gets."""
