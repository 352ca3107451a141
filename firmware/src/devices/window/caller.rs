//! Caller keypad actions to the same window commands as the API's: a pure mapping,
//! given who is signed in at the window and the setup in force (for a number typed as
//! digits: the window's first service prefix and the number width).

use hallq_engine::{Command, TransferTarget};
use hallq_hardware::window::keys::CallerAction;

use crate::in_force::InForce;

/// The command for `action` at `window`, as `staff` (signed in there; `paused` says
/// whether the window is paused); why not, when the action is incomplete.
pub fn command(
    action: CallerAction,
    window: u32,
    staff: String,
    paused: bool,
    in_force: &InForce,
) -> Result<Command, &'static str> {
    Ok(match action {
        CallerAction::CallNext => Command::CallNext { window, staff },
        CallerAction::Recall => Command::Recall { window, staff },
        CallerAction::NoShow => Command::NoShow { window, staff },
        CallerAction::Finish => Command::Finish {
            window,
            staff,
            case_no: None,
        },
        CallerAction::Pause => Command::Pause {
            window,
            staff,
            reason: "caller keypad".into(),
        },
        CallerAction::Resume => Command::Resume { window, staff },
        CallerAction::PauseToggle if paused => Command::Resume { window, staff },
        CallerAction::PauseToggle => Command::Pause {
            window,
            staff,
            reason: "caller keypad".into(),
        },
        CallerAction::Transfer {
            to_window: Some(to),
        } => Command::Transfer {
            window,
            staff,
            to: TransferTarget::Window(to),
        },
        CallerAction::Transfer { to_window: None } => {
            return Err("transfer needs the target window typed first");
        }
        CallerAction::CallNumber(typed) => {
            let number = if typed.starts_with(|c: char| c.is_ascii_digit()) {
                in_force.typed_number(window, &typed)
            } else {
                typed
            };
            Command::CallNumber {
                window,
                staff,
                number,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_digits_take_the_prefix_and_width_in_force() {
        let mut in_force = crate::testing::in_force();
        in_force.setup.number_width = 3;
        let call = |f: &InForce, typed: &str| match command(
            CallerAction::CallNumber(typed.into()),
            1,
            "S1".into(),
            false,
            f,
        ) {
            Ok(Command::CallNumber { number, .. }) => number,
            other => panic!("{other:?}"),
        };
        assert_eq!(call(&in_force, "12"), "A012");
        assert_eq!(call(&in_force, "B7"), "B7");
        in_force.setup.services[0].prefix = "Q".into();
        in_force.setup.number_width = 4;
        assert_eq!(call(&in_force, "12"), "Q0012");
        assert!(matches!(
            command(CallerAction::PauseToggle, 1, "S1".into(), true, &in_force),
            Ok(Command::Resume { .. })
        ));
        assert!(
            command(
                CallerAction::Transfer { to_window: None },
                1,
                "S1".into(),
                false,
                &in_force
            )
            .is_err()
        );
    }
}
