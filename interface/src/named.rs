//! Closed sets of values known by stable names (ops, CPU kernel paths, backends): parsed from
//! their names and shown as them, with one error that lists the choices.

/// A value of a closed set, each with a stable name (reports, flags, environment variables).
pub trait Named: Copy + 'static {
    /// What a value is called in errors: `op`, `CPU kernel path`, `backend`.
    const WHAT: &'static str;
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
}

/// A name that none of the set's values has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`; use one of {}", choices.join(", "))]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
    pub choices: Vec<&'static str>,
}

/// The value of `T` named `s` (case and surrounding spaces ignored).
pub fn parse<T: Named>(s: &str) -> Result<T, UnknownName> {
    let wanted = s.trim().to_ascii_lowercase();
    T::ALL
        .iter()
        .copied()
        .find(|v| v.name() == wanted)
        .ok_or_else(|| UnknownName {
            what: T::WHAT,
            name: s.to_string(),
            choices: T::ALL.iter().map(|v| v.name()).collect(),
        })
}

/// Implements [`Named`] from the type's inherent `ALL` and `name`, and `FromStr` and
/// `Display` through the name.
#[macro_export]
macro_rules! named {
    ($t:ty, $what:literal) => {
        impl $crate::named::Named for $t {
            const WHAT: &'static str = $what;
            const ALL: &'static [Self] = &<$t>::ALL;
            fn name(self) -> &'static str {
                <$t>::name(self)
            }
        }

        impl ::std::str::FromStr for $t {
            type Err = $crate::named::UnknownName;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                $crate::named::parse(s)
            }
        }

        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(<$t>::name(*self))
            }
        }
    };
}

/// Checks, for tests, that every value of `T` has a name of its own, parses from it and shows
/// as it.
pub fn assert_names_round_trip<T>()
where
    T: Named + std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
    T::Err: std::fmt::Debug,
{
    for &v in T::ALL {
        assert_eq!(v.name().parse::<T>().unwrap(), v, "{}", v.name());
        assert_eq!(v.to_string(), v.name());
    }
    let names: std::collections::HashSet<&str> = T::ALL.iter().map(|v| v.name()).collect();
    assert_eq!(names.len(), T::ALL.len(), "two {}s share a name", T::WHAT);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_path::KernelPath;

    #[test]
    fn kernel_paths_round_trip_by_name() {
        assert_names_round_trip::<KernelPath>();
    }

    #[test]
    fn an_unknown_name_lists_the_choices_and_case_is_ignored() {
        let e = " sse ".parse::<KernelPath>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown CPU kernel path ` sse `; use one of avx512, avx2, neon-bf16, neon, portable"
        );
        assert_eq!("AVX2".parse::<KernelPath>().unwrap(), KernelPath::Avx2);
    }
}
