"""The notes example: a FastAPI service whose notes live in a gen_server."""
