"""Command-line entry points of keras_taylor (installed as the `keras_taylor_bin` package)."""
