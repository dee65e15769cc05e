"""Hugging Face datasets: tasks loaded from them, and tasks exported as them."""
