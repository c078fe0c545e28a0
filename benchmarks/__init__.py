"""Speed benchmarks (``make bench``): the project's pipeline against the original, measured side by side."""
