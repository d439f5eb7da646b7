"""bcfl: blockchain-backed, asynchronous, peer-to-peer federated fine-tuning of LLMs."""

__version__ = "0.1.0"
