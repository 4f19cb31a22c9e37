"""SMS gateways: SMS.ru, SMSC.ru, fake; and the outbox channel adapter."""
