//! Binding states of D12 §5.11 (numbers of §12.3).

/// The status of one address in a binding update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BindingStatus {
    /// Available; the primary may allocate it.
    Free = 1,
    /// Leased to a client.
    Active = 2,
    /// The lease ran out (transitory until the partner acknowledges).
    Expired = 3,
    /// The client released it (transitory).
    Released = 4,
    /// Unusable: a ping answered or a DHCPDECLINE.
    Abandoned = 5,
    /// Freed by the operator (transitory).
    Reset = 6,
    /// Available; the secondary may allocate it.
    Backup = 7,
}

impl BindingStatus {
    /// The status of a wire value, or `None` for an undefined one.
    pub const fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => BindingStatus::Free,
            2 => BindingStatus::Active,
            3 => BindingStatus::Expired,
            4 => BindingStatus::Released,
            5 => BindingStatus::Abandoned,
            6 => BindingStatus::Reset,
            7 => BindingStatus::Backup,
            _ => return None,
        })
    }

    /// The draft's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            BindingStatus::Free => "FREE",
            BindingStatus::Active => "ACTIVE",
            BindingStatus::Expired => "EXPIRED",
            BindingStatus::Released => "RELEASED",
            BindingStatus::Abandoned => "ABANDONED",
            BindingStatus::Reset => "RESET",
            BindingStatus::Backup => "BACKUP",
        }
    }
}
