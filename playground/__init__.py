"""The offline world: an emulated Telegram, its user side, a sandbox SMM panel and a web chat.

Test and demo tooling, never imported by `bot` at start-up: only the `playground` command and
`PANEL_API_URL=sandbox` reach in, lazily.
"""
