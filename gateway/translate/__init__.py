"""The Anthropic Messages and Gemini APIs, translated to and from chat completions (pure).

    common.py             what both share: request checks, content parts, reading an answer
    stream.py             a chunk stream read into neutral deltas, and the one stream driver
    anthropic_request.py  Messages request → chat request
    anthropic.py          chat answer and chunks → Messages answer and events
    gemini_request.py     generateContent request → chat request
    gemini.py             chat answer and chunks → Gemini answer and chunks
"""
