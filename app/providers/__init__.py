"""Upstreams: each provider turns an OpenAI chat request into its upstream's call and back.

Nothing outside this package knows an upstream's wire format or touches httpx.
"""
