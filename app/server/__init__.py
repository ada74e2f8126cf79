"""HTTP: the Sanic application, its guards, routes and the streaming relay."""
