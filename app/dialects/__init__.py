"""API dialects at the gateway's edges: pure transforms between each and the OpenAI chat shape."""
