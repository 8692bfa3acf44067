"""Publishing (the upload rules): Hub transports (Hugging Face, a local folder), repos, cards."""
