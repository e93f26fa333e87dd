"""Event capture (issue 22): the last seconds of frames kept in memory, saved as a session around a
trigger. The parts: the trigger's checks (trigger.py), the rig's recent state samples (states.py), one
event's window and save (event.py), and the service's desk that arms the ring and takes triggers
(desk.py). The ring of frames itself is camera.ring; the save is service.jobs.session_save's, the
same as a recording's."""
