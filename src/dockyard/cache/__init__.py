"""Where each digest lives: the durable index behind dedupe."""
