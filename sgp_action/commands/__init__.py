"""One thin module per CLI command: flags in `add_arguments`, work delegated to the library in `execute`."""
