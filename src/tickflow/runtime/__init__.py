"""What the apps and the local stack both stand on: where state lives (``paths``), the PostgreSQL
credentials and connection (``postgres``), the JDK, Maven and Spark they run (``tooling``).

Nothing here starts a service: the local stack (``tickflow.stack``) does, and only the ``tickflow stack``
commands import it. An app that runs against another cluster needs this layer, not the stack.
"""
