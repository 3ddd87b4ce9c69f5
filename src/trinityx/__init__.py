"""TrinityX: helpful, harmless and honest LoRA experts composed inside the transformer by a calibrated router."""

__version__ = "0.1.0"

DIMENSIONS: tuple[str, ...] = ("helpful", "harmless", "honest")
