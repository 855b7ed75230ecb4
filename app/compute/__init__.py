"""Computing explanations off the event loop: the micro-batcher, and cost budgets."""
