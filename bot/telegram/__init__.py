"""The Telegram adapter: thin handlers over `bot.moderation`, the application factory, terminal chat, CLI.

Importing this package does not import python-telegram-bot; `bot.telegram.app` does.
"""
