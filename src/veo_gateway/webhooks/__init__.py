"""Completion webhooks: signed `video.completed` / `video.failed` events, delivered from an outbox.

`signing.py` signs as the Standard Webhooks specification says, `store.py` keeps the outbox
(deliveries, attempts, per-request callback URLs), `sender.py` POSTs without reaching inside the
network, and `dispatcher.py` queues events for finished tasks and delivers them with retries.
"""
