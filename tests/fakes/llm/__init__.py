"""The fake model server's parts; import it from tests.fakes.llm_server."""
