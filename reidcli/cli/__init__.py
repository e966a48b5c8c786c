"""The `reid` command line. Each module parses one stage's options and calls library code."""
