"""Server integration: taking over the server's SIGTERM/SIGINT handling, ``serve()`` and the
``gracekit`` command line."""
