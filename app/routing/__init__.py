"""From a model id to the upstream that serves it: resolution, retry policy, execution."""
