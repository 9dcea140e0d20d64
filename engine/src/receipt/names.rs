//! The closed-with-an-escape enums of the header: [`Kind`], [`ActorType`], [`Decision`].
//!
//! Each has built-in variants with a fixed wire name (lowercase `snake_case` in JSON, a tag
//! byte in the binary header) and a `Custom` variant for anything else, holding a validated
//! name (`[a-z][a-z0-9_.-]*`, at most [`MAX_NAME_BYTES`](super::MAX_NAME_BYTES)) that may not
//! spell a built-in one, so every value has exactly one representation.

use std::fmt;
use std::str::FromStr;

use super::error::{Problem, ReceiptError};
use super::limits::check_name;

macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        enum $name:ident, custom $custom:ident, field $field:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $tag:literal, $wire:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value outside the built-in ones.
            Custom($custom),
        }

        #[doc = concat!("A validated custom name for [`", stringify!($name), "::Custom`]: ",
            "`[a-z][a-z0-9_.-]*`, at most `MAX_NAME_BYTES` bytes, not a built-in name.")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $custom(String);

        impl $custom {
            #[doc = concat!("Validates a custom name. The error names the field `", $field, "`.")]
            ///
            /// # Errors
            ///
            /// [`ReceiptError::Field`] when the name breaks the rule or spells a built-in value.
            pub fn new(name: impl Into<String>) -> Result<Self, ReceiptError> {
                let name = name.into();
                check_name(&name).map_err(|p| ReceiptError::field_error($field, p))?;
                if $name::builtin(&name).is_some() {
                    return Err(ReceiptError::field_error($field, Problem::Reserved { name }));
                }
                Ok(Self(name))
            }

            /// The name.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl $name {
            /// Every built-in value, in tag order.
            pub const BUILT_IN: &'static [Self] = &[$( Self::$variant, )+];

            /// Parses a wire name: a built-in one gives its variant, anything else a validated
            #[doc = concat!("[`", stringify!($name), "::Custom`].")]
            ///
            /// # Errors
            ///
            #[doc = concat!("[`ReceiptError::Field`] naming `", $field, "` when the name is not valid.")]
            pub fn parse(name: &str) -> Result<Self, ReceiptError> {
                match Self::builtin(name) {
                    Some(v) => Ok(v),
                    None => $custom::new(name).map(Self::Custom),
                }
            }

            fn builtin(name: &str) -> Option<Self> {
                match name {
                    $( $wire => Some(Self::$variant), )+
                    _ => None,
                }
            }

            /// The wire name, as in the event JSON.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Custom(c) => c.as_str(),
                }
            }

            /// Tag byte in the binary header: 0 for `Custom` (a name follows), else fixed.
            pub(crate) fn tag(&self) -> u8 {
                match self {
                    $( Self::$variant => $tag, )+
                    Self::Custom(_) => 0,
                }
            }

            /// The built-in variant of a non-zero tag.
            pub(crate) fn from_tag(tag: u8) -> Option<Self> {
                match tag {
                    $( $tag => Some(Self::$variant), )+
                    _ => None,
                }
            }
        }

        impl FromStr for $name {
            type Err = ReceiptError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum! {
    /// What a receipt records (`kind` in the event JSON).
    enum Kind, custom CustomKind, field "kind" {
        /// A call to a language model (`llm_call`, tag 1).
        LlmCall = 1, "llm_call";
        /// A tool or function call (`tool_call`, tag 2).
        ToolCall = 2, "tool_call";
        /// A policy engine's decision (`policy_decision`, tag 3).
        PolicyDecision = 3, "policy_decision";
        /// A human or automated approval (`approval`, tag 4).
        Approval = 4, "approval";
        /// An evaluation of an output (`evaluation`, tag 5).
        Evaluation = 5, "evaluation";
        /// Start, stop, deploy, configuration change (`lifecycle`, tag 6).
        Lifecycle = 6, "lifecycle";
    }
}

named_enum! {
    /// Who acted (`actor_type` in the event JSON).
    enum ActorType, custom CustomActorType, field "actor_type" {
        /// An AI agent (`agent`, tag 1).
        Agent = 1, "agent";
        /// A person (`human`, tag 2).
        Human = 2, "human";
        /// The surrounding system or service (`system`, tag 3).
        System = 3, "system";
        /// A tool acting on its own (`tool`, tag 4).
        Tool = 4, "tool";
    }
}

named_enum! {
    /// A policy decision (`policy_eval.decision` in the event JSON).
    enum Decision, custom CustomDecision, field "policy_eval.decision" {
        /// Allowed (`allow`, tag 1).
        Allow = 1, "allow";
        /// Denied (`deny`, tag 2).
        Deny = 2, "deny";
        /// Escalated to a human or a higher authority (`escalate`, tag 3).
        Escalate = 3, "escalate";
    }
}
