"""The shared runtime every x0tta6bl4 service stands on: config, SVIDs, mTLS gRPC, authz, telemetry.

No business logic lives here; services import it, it imports no service.
"""
