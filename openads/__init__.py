"""Process glue for OpenADS: configuration, CLI, event bus, providers."""
