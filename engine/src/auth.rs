//! Who a caller is: the identity and role that ripcord writes into every
//! certificate it issues, and what each role may do.

use std::fmt;
use std::str::FromStr;

/// What a certificate holder is allowed to be.
///
/// The role travels in the certificate (subject `OU`), the identity in its
/// common name; see `ripcord certs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The coordinator's server certificate. Cannot call anything.
    Coordinator,
    /// A host agent: may only open the agent stream.
    Agent,
    /// A person or automation that may start, approve, abort and ping.
    Operator,
    /// May only read: list agents, list and show runs.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Coordinator, Role::Agent, Role::Operator, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Agent => "agent",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role may call an operation of the given kind.
    pub fn may(self, access: Access) -> bool {
        match access {
            Access::AgentStream => self == Role::Agent,
            Access::Read => matches!(self, Role::Operator | Role::Viewer),
            Access::Act => self == Role::Operator,
        }
    }
}

/// The kinds of access a call needs. Every RPC maps to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The agent's bidirectional stream.
    AgentStream,
    /// Reading fleet and run state.
    Read,
    /// Anything that changes state or reaches agents (start, approve, ping…).
    Act,
}

impl Access {
    /// The roles allowed this access, for error messages.
    pub fn allowed_roles(self) -> Vec<Role> {
        Role::ALL.into_iter().filter(|r| r.may(self)).collect()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role \"{0}\" (expected one of: coordinator, agent, operator, viewer)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// A verified caller: the name and role read from its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.role)
    }
}

/// A name that cannot be an identity (see [`check_name`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Empty, or longer than 128 bytes.
    #[error("name \"{0}\" must be 1 to 128 characters")]
    Length(String),
    /// A character outside the allowed set, or a first character that is
    /// not a letter or digit.
    #[error("name \"{0}\" may only hold letters, digits, '.', '-', '_' and '@', and must start with a letter or digit")]
    Characters(String),
}

/// Checks a name used as an identity (agent id, operator name): 1–128
/// characters of ASCII letters, digits, `.`, `-`, `_` and `@`, starting with a
/// letter or digit. Keeps ids safe in file names, selectors and logs.
pub fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 128 {
        return Err(Error::Length(name.to_string()));
    }
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if first_ok && rest_ok { Ok(()) } else { Err(Error::Characters(name.to_string())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_unknown_is_named() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        let err = "admin".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("\"admin\""), "{err}");
    }

    #[test]
    fn access_table() {
        use Access::*;
        let table = [
            (Role::Agent, [true, false, false]),
            (Role::Operator, [false, true, true]),
            (Role::Viewer, [false, true, false]),
            (Role::Coordinator, [false, false, false]),
        ];
        for (role, expect) in table {
            let got = [role.may(AgentStream), role.may(Read), role.may(Act)];
            assert_eq!(got, expect, "{role}");
        }
        assert_eq!(Act.allowed_roles(), vec![Role::Operator]);
    }

    #[test]
    fn names() {
        for ok in ["cache-1", "a", "ops@example.com", "redis_2.prod"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", &"x".repeat(129)] {
            assert_eq!(check_name(bad), Err(Error::Length(bad.to_string())), "{bad}");
        }
        for bad in ["-x", "a b", "a/b", "ü"] {
            assert_eq!(check_name(bad), Err(Error::Characters(bad.to_string())), "{bad}");
        }
        assert_eq!(
            check_name("a b").unwrap_err().to_string(),
            "name \"a b\" may only hold letters, digits, '.', '-', '_' and '@', and must start with a letter or digit"
        );
        assert_eq!(check_name("").unwrap_err().to_string(), "name \"\" must be 1 to 128 characters");
    }
}
