import subprocess


def run(n: int) -> list[str]:
    out = subprocess.run(["python3", "/app/fizzbuzz.py", str(n)], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_fifteen_ends_with_fizzbuzz():
    assert run(15)[-1] == "FizzBuzz"


def test_length():
    assert len(run(10)) == 10
