"""Sentence embeddings of passages and questions, and the tokenizer passages are sized in: local model folders only.

Never imports Django or `kb`: which model is active, and every setting, is passed in by the caller.
"""
