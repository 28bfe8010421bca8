"""APEX Learning: enroll roster students into classrooms (a push).

`client.py` speaks the API, `enroll.py` is the job behind uploads and `enroll_apex`,
`simulator.py` is the local stand-in used by tests and `manage.py sandbox`.
"""
