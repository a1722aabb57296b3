"""The jobs a user runs: each one a function taking paths and options and reporting progress."""
