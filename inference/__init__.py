"""Local LLM engines behind one interface. Knows nothing of Django."""
