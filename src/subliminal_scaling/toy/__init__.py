"""The offline toy world (rules/toy.smk): tokenizer, synthetic chats, tiny models."""
