"""Slack out: the Web API client and its errors (`api`), each workspace's rate budget (`pacer`), and the
writer that shows one streamed answer in Slack (`writers`)."""
