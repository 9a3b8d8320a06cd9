"""The MCP door: the same conversions and jobs as the HTTP API, as tools an agent can call (`tools.py`), served
at `/mcp` in the HTTP app (Streamable HTTP, `http.py`) and over stdio by `python -m app mcp`."""
