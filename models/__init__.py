"""The OpenADS domain core: entities, rules and the services that write them.

No Asterisk, no Flask, no HTTP in here.
"""

from models.alerts import ExecutorAlertSettings, PushSubscription, TicketAlert, TicketAlertStep  # noqa: F401
from models.audit import AuditEntry  # noqa: F401
from models.auth import LoginFailure, LoginLock, RecoveryCode, UserSession  # noqa: F401
from models.base import Base  # noqa: F401
from models.call import Call, CallTicket, DispatcherPhone, TelephonySettings, TicketLegalHold  # noqa: F401
from models.event_cursor import EventCursor  # noqa: F401
from models.field import ExecutorAction, ExecutorDuty, ExecutorPosition  # noqa: F401
from models.housing import Account, House, HouseNote, Premise, Resident, ResidentPhone  # noqa: F401
from models.job import Job  # noqa: F401
from models.missed_call import CallbackAttempt, MissedCall, MissedCallCall  # noqa: F401
from models.notification import ContactChannel, ResidentContactPreference, RobotSettings  # noqa: F401
from models.organization import ApiToken, DispatchCentre, Hotline, Membership, Organization, Role, User  # noqa: F401
from models.outbox import DomainEvent, OutboxAttempt, OutboxMessage  # noqa: F401
from models.rating import RatingAttempt, RatingCall, TicketRating  # noqa: F401
from models.rating_audio import RatingAudioAccess  # noqa: F401
from models.recording import Recording, RecordingAccess, RecordingPurge  # noqa: F401
from models.seals import RecordSeal  # noqa: F401
from models.telephony import AriStatus, TestCall  # noqa: F401
from models.ticket import (  # noqa: F401
    Attachment,
    Category,
    Channel,
    Incident,
    Ticket,
    TicketComment,
    TicketCounter,
    TicketHistory,
    TicketStatus,
)
