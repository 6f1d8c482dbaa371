"""What the apps and the local stack both stand on: where state lives (``paths``), the PostgreSQL
credentials and connection (``postgres``), the JDK, Maven and Spark they run (``tooling``).

Nothing here starts a service: the local stack (``tickflow.stack``) does, and outside it only the command
line imports the stack (``tickflow stack``, and its error sentences naming the service at an address). An app
that runs against another cluster needs this layer, not the stack.
"""
