"""The Anthropic Messages and Gemini APIs, translated to and from chat completions (pure).

    common.py             what both share: content parts, tool calls, stream accumulation
    anthropic_request.py  Messages request → chat request
    anthropic.py          chat answer and chunks → Messages answer and events
    gemini_request.py     generateContent request → chat request
    gemini.py             chat answer and chunks → Gemini answer and chunks
"""
