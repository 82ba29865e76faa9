"""The local suite runner: real SPIRE, OPA, Redis, Prometheus, Alertmanager and the services as
plain processes on 127.0.0.1, under supervisord. Also used by the integration tests to start
the same real parts the same way."""
