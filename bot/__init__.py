"""A Slack assistant that answers in threads by streaming from Mistral's chat models."""
