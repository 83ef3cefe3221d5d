"""Slack out: the Web API client and its errors (`api`), each workspace's rate budget (`pacer`), and what shows
one streamed answer in Slack: the writer factory (`writers`), one answer's writer loop (`answer_writer`), the
messages it writes (`parts`, `streams`), its loading state (`status`) and its Block Kit controls (`blocks`)."""
