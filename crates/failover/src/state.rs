//! The server states of D12 §9 and their numbers on the wire (§12.24).

/// A failover server state, as sent in the server-state option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ServerState {
    /// Never sent as a state: a server starting sends its previous state with the STARTUP flag.
    Startup = 1,
    /// In contact; clients balanced by hash.
    Normal = 2,
    /// Out of contact; each serves from its own pool, renewals capped by the MCLT.
    CommunicationsInterrupted = 3,
    /// The partner is known to be down: this server serves all, and the partner's pool after MCLT.
    PartnerDown = 4,
    /// Both may have served the same addresses; no service until resolved.
    PotentialConflict = 5,
    /// Lost or stale database: no service until the partner has sent its bindings.
    Recover = 6,
    /// The server is restarting soon; the partner goes COMMUNICATIONS-INTERRUPTED.
    Paused = 7,
    /// The server is stopping; the partner goes PARTNER-DOWN.
    Shutdown = 8,
    /// Recovered; waits for the partner before NORMAL, answering renewals only.
    RecoverDone = 9,
    /// Contact lost during POTENTIAL-CONFLICT.
    ResolutionInterrupted = 10,
    /// The primary resolved its side of a conflict; waits for the secondary.
    ConflictDone = 11,
    /// Updates received; waits out the MCLT before RECOVER-DONE. The draft names it but gives no
    /// number; ISC 3.x and 4.x send 254.
    RecoverWait = 254,
}

impl ServerState {
    /// The state of a wire value, or `None` for a value no implementation sends.
    pub const fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => ServerState::Startup,
            2 => ServerState::Normal,
            3 => ServerState::CommunicationsInterrupted,
            4 => ServerState::PartnerDown,
            5 => ServerState::PotentialConflict,
            6 => ServerState::Recover,
            7 => ServerState::Paused,
            8 => ServerState::Shutdown,
            9 => ServerState::RecoverDone,
            10 => ServerState::ResolutionInterrupted,
            11 => ServerState::ConflictDone,
            254 => ServerState::RecoverWait,
            _ => return None,
        })
    }

    /// The draft's name, as logs and tshark print it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ServerState::Startup => "STARTUP",
            ServerState::Normal => "NORMAL",
            ServerState::CommunicationsInterrupted => "COMMUNICATIONS-INTERRUPTED",
            ServerState::PartnerDown => "PARTNER-DOWN",
            ServerState::PotentialConflict => "POTENTIAL-CONFLICT",
            ServerState::Recover => "RECOVER",
            ServerState::Paused => "PAUSED",
            ServerState::Shutdown => "SHUTDOWN",
            ServerState::RecoverDone => "RECOVER-DONE",
            ServerState::ResolutionInterrupted => "RESOLUTION-INTERRUPTED",
            ServerState::ConflictDone => "CONFLICT-DONE",
            ServerState::RecoverWait => "RECOVER-WAIT",
        }
    }
}

impl core::fmt::Display for ServerState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which clients a server answers in a state (D12 §9, S7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Service {
    /// None: the state must leave no trace of any client in the database.
    None,
    /// Renewals and rebinds only (RECOVER-DONE).
    RenewOnly,
    /// Renewals and rebinds from anyone, the rest only for the clients the load-balancing hash
    /// gives this server (NORMAL).
    Balanced,
    /// Every client, from this server's own pool (and the partner's once PARTNER-DOWN's MCLT has
    /// passed).
    All,
}

impl Service {
    /// The service of a value from `self as u8`; `None` for any other value.
    pub const fn from_u8(value: u8) -> Option<Service> {
        Some(match value {
            0 => Service::None,
            1 => Service::RenewOnly,
            2 => Service::Balanced,
            3 => Service::All,
            _ => return None,
        })
    }
}

impl ServerState {
    /// Which clients a server in this state answers.
    pub const fn service(self) -> Service {
        match self {
            ServerState::Normal => Service::Balanced,
            ServerState::CommunicationsInterrupted
            | ServerState::PartnerDown
            | ServerState::ResolutionInterrupted
            | ServerState::ConflictDone => Service::All,
            ServerState::RecoverDone => Service::RenewOnly,
            ServerState::Startup
            | ServerState::PotentialConflict
            | ServerState::Recover
            | ServerState::Paused
            | ServerState::Shutdown
            | ServerState::RecoverWait => Service::None,
        }
    }

    /// The state a server in this state goes to when communication with its partner fails
    /// (D12 §9.2): the states that need the partner fall back; the others go on.
    #[must_use]
    pub const fn on_communications_failure(self) -> ServerState {
        match self {
            ServerState::Normal | ServerState::RecoverDone => {
                ServerState::CommunicationsInterrupted
            }
            ServerState::PotentialConflict | ServerState::ConflictDone => {
                ServerState::ResolutionInterrupted
            }
            other => other,
        }
    }

    /// The state a server restarts into, before it has spoken to its partner, when it was in
    /// this state (D12 §9.3.2): through the communication-failed transition; a wait for the MCLT
    /// that a restart interrupted starts over from RECOVER.
    #[must_use]
    pub const fn after_restart(self) -> ServerState {
        match self {
            ServerState::Startup | ServerState::Paused | ServerState::Shutdown => {
                ServerState::CommunicationsInterrupted
            }
            ServerState::RecoverWait => ServerState::Recover,
            other => other.on_communications_failure(),
        }
    }
}
