//! The scenarios, one per seed family, weighted to a mix that looks like traffic: mostly
//! quick reads, some writes, a few slow tasks, and a trickle of bad requests.
//!
//! Request names are route templates (`/sleep/{ms}`), the label glassbox uses, so goose's
//! reports group by route and line up with the server's own numbers.

pub mod bad;
pub mod deepgram;
pub mod math;
pub mod messages;
pub mod tasks;

use std::sync::Arc;
use std::time::Duration;

use goose::prelude::*;

use crate::context;

/// goose's `transaction!` for a function given by path.
macro_rules! tx {
    ($f:path) => {
        Transaction::new(Arc::new(move |user| Box::pin($f(user))))
    };
}

/// Every scenario, weighted; users pause up to `think_time` between transactions.
pub fn all(think_time: Duration) -> Result<Vec<Scenario>, GooseError> {
    let scenarios = vec![
        scenario!("Deepgram")
            .set_weight(8)?
            .register_transaction(tx!(deepgram::hello).set_name("hello").set_weight(6)?)
            .register_transaction(tx!(deepgram::sleep).set_name("sleep").set_weight(2)?)
            .register_transaction(tx!(deepgram::code).set_name("code").set_weight(3)?)
            .register_transaction(tx!(deepgram::work).set_name("work"))
            .register_transaction(tx!(deepgram::status).set_name("status"))
            .register_transaction(tx!(deepgram::health).set_name("health")),
        scenario!("Math")
            .set_weight(4)?
            .register_transaction(tx!(math::fibonacci).set_name("fibonacci").set_weight(3)?)
            .register_transaction(tx!(math::factorial).set_name("factorial").set_weight(3)?)
            .register_transaction(tx!(math::ackermann).set_name("ackermann").set_weight(2)?)
            .register_transaction(tx!(math::total).set_name("total")),
        scenario!("Messages")
            .set_weight(4)?
            .register_transaction(
                tx!(messages::post_then_get)
                    .set_name("post then get")
                    .set_weight(3)?,
            )
            .register_transaction(tx!(messages::get_unknown).set_name("unknown digest")),
        scenario!("Randomize")
            .register_transaction(tx!(tasks::randomize).set_name("shuffle a PNG")),
        scenario!("SumEvens").register_transaction(tx!(tasks::sum_evens).set_name("sum a file")),
        bad::BAD
            .iter()
            .fold(scenario!("BadRequests"), |scenario, bad| {
                scenario.register_transaction(
                    Transaction::new(Arc::new(move |user| Box::pin(bad::send_bad(user, bad))))
                        .set_name(bad.name),
                )
            }),
    ];
    scenarios
        .into_iter()
        .map(|scenario| with_lifecycle(scenario, think_time))
        .collect()
}

/// One scenario for measuring the load generator itself: GET / with no pause.
pub fn hello_only() -> Result<Scenario, GooseError> {
    with_lifecycle(
        scenario!("Hello").register_transaction(tx!(deepgram::hello).set_name("hello")),
        Duration::ZERO,
    )
}

fn with_lifecycle(scenario: Scenario, think_time: Duration) -> Result<Scenario, GooseError> {
    let scenario = scenario
        .register_transaction(tx!(start_user).set_name("start").set_on_start())
        .register_transaction(tx!(stop_user).set_name("stop").set_on_stop());
    if think_time.is_zero() {
        Ok(scenario)
    } else {
        scenario.set_wait_time(Duration::ZERO, think_time)
    }
}

/// Gives the user its own client, trusting glassbox's CA.
async fn start_user(user: &mut GooseUser) -> TransactionResult {
    let context = context::get();
    user.set_client_builder(context.client.builder()).await?;
    context.recorder.user_started();
    Ok(())
}

async fn stop_user(_user: &mut GooseUser) -> TransactionResult {
    context::get().recorder.user_stopped();
    Ok(())
}
