"""The run: suites, the runner, user models, optimize and compare."""
