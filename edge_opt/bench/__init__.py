"""The benchmark harness: measurements in isolated child processes, and their statistics."""
