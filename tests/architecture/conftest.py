"""The shape of the code and the docs that describe it: import contracts, sizes, one clock,
typed states, the extension points as docs/extending.md says."""
