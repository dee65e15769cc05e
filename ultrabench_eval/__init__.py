"""ultrabench-eval: how good are a frozen encoder's features on ultrasound tasks."""

__version__ = "0.1.0"
