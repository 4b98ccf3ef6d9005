"""The sample agent: a synchronous Agentex ACP server that echoes each message back.

Run locally with `uvicorn project.acp:acp --port 8000` after `pip install -r requirements.txt`.
"""

from __future__ import annotations

from agentex.lib.sdk.fastacp.fastacp import FastACP
from agentex.lib.types.acp import SendMessageParams
from agentex.types.text_content import TextContent

acp = FastACP.create(acp_type="sync")


@acp.on_message_send
async def handle_message_send(params: SendMessageParams) -> TextContent:
    """Answer every text message with the same text."""
    return TextContent(author="agent", content=f"Echo: {params.content.content}")
