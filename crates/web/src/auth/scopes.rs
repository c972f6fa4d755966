//! What a request may do: the scopes of a personal API token (a browser session holds them all,
//! `admin` only for administrators).

/// What a personal API token may do. A browser session may do everything its user may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    TasksRead,
    TasksWrite,
    ResourcesRead,
    ResourcesWrite,
    StatusWrite,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::TasksRead,
        Scope::TasksWrite,
        Scope::ResourcesRead,
        Scope::ResourcesWrite,
        Scope::StatusWrite,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TasksRead => "tasks:read",
            Scope::TasksWrite => "tasks:write",
            Scope::ResourcesRead => "resources:read",
            Scope::ResourcesWrite => "resources:write",
            Scope::StatusWrite => "status:write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub fn all() -> Self {
        Scopes(Scope::ALL.iter().fold(0, |bits, s| bits | s.bit()))
    }

    pub fn with(self, scope: Scope) -> Self {
        Scopes(self.0 | scope.bit())
    }

    pub fn without(self, scope: Scope) -> Self {
        Scopes(self.0 & !scope.bit())
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The stored form: space-separated names. Names this version does not know are dropped (a
    /// scope removed in a later version grants nothing).
    pub fn from_db(s: &str) -> Self {
        s.split_whitespace()
            .filter_map(Scope::parse)
            .fold(Scopes::default(), Scopes::with)
    }

    pub fn to_db(self) -> String {
        self.names().join(" ")
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}
